// Command hangar is the Hangar CSI driver: storage server, CSI controller,
// CSI node plugin, an all-in-one mode and a small client, as subcommands.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hangar: not built yet")
	os.Exit(2)
}
