package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/otakit/ota/internal/progress"
)

// ReportSchema is the version of the --json reports, their first key "schema". It changes
// when a key is removed or changes meaning; new keys may appear without a change.
const ReportSchema = 1

// PrintJSON writes v, which must encode as a JSON object, as an indented --json report
// whose first key is "schema".
func PrintJSON(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) < 2 || data[0] != '{' {
		return fmt.Errorf("a %T report is not a JSON object", v)
	}
	head := fmt.Sprintf(`{"schema":%d`, ReportSchema)
	if string(data) != "{}" {
		head += ","
	}
	var out bytes.Buffer
	if err := json.Indent(&out, append([]byte(head), data[1:]...), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// Progress returns the reporter the global --progress and -q flags ask for, writing to
// standard error.
func Progress(c *cli.Context) progress.Reporter {
	mode, _ := c.App.Metadata[progressKey].(string)
	r, err := progress.New(mode, os.Stderr)
	if err != nil { // no mode: Setup's Before did not run
		return progress.Discard
	}
	return r
}
