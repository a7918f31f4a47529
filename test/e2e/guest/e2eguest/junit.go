package main

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hangar-csi/hangar/test/sanity/skips"
)

// junitMain summarizes a ginkgo JUnit report (csi-sanity --ginkgo.junit-report):
// one line per failed and per skipped spec, then the totals. A skipped spec
// not in skips.Allowed fails the run, as in test/sanity; pending specs are
// csi-test's own (marked pending there) and only counted.
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
	pass, fail, skip, pending, badSkip := 0, 0, 0, 0, 0
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
			case c.Status == "pending":
				pending++
				fmt.Printf("E2E-SANITY-PENDING %s\n", name)
			case c.Skipped != nil:
				skip++
				why := "allowed, see test/sanity/skips"
				if !skips.IsAllowed(name) {
					badSkip++
					why = "NOT ALLOWED (test/sanity/skips)"
				}
				fmt.Printf("E2E-SANITY-SKIPPED %s :: %s :: %s\n", name, strings.Join(strings.Fields(c.Skipped.Message), " "), why)
			default:
				pass++
			}
		}
	}
	fmt.Printf("E2E-SANITY-TOTAL passed=%d failed=%d skipped=%d pending=%d\n", pass, fail, skip, pending)
	if fail > 0 || badSkip > 0 {
		return fmt.Errorf("%d failed specs, %d skipped specs not allowed to skip", fail, badSkip)
	}
	return nil
}
