package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strings"
)

// junitMain summarizes a ginkgo JUnit report (csi-sanity --ginkgo.junit-report):
// one line per failed and per skipped spec, then the totals.
func junitMain(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: junit REPORT.xml")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var r struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Status  string `xml:"status,attr"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &r); err != nil {
		return err
	}
	pass, fail, skip := 0, 0, 0
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			name := strings.Join(strings.Fields(c.Name), " ")
			switch {
			case c.Failure != nil || c.Error != nil:
				fail++
				msg := ""
				if c.Failure != nil {
					msg = c.Failure.Message
				} else {
					msg = c.Error.Message
				}
				if len(msg) > 600 {
					msg = msg[:600] + "..."
				}
				fmt.Printf("E2E-SANITY-FAILED %s :: %s\n", name, strings.Join(strings.Fields(msg), " "))
			case c.Skipped != nil:
				skip++
				fmt.Printf("E2E-SANITY-SKIPPED %s :: %s\n", name, strings.Join(strings.Fields(c.Skipped.Message), " "))
			default:
				pass++
			}
		}
	}
	fmt.Printf("E2E-SANITY-TOTAL passed=%d failed=%d skipped=%d\n", pass, fail, skip)
	if fail > 0 {
		return fmt.Errorf("%d failed specs", fail)
	}
	return nil
}
