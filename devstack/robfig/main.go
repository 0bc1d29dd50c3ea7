// Command robfig-next answers, line by line, what robfig/cron v3 says about a schedule.
//
// Each input line is four tab-separated fields:
//
//	<spec, Go-quoted> TAB <zone of time.Local> TAB <start, Unix seconds> TAB <n>
//
// The spec is quoted (a JSON string is a valid Go one) so that tabs, newlines and other odd
// whitespace inside it reach ParseStandard unchanged.
//
// The zone stands in for time.Local: a spec without a TZ=/CRON_TZ= prefix is walked in it, which
// is what ParseStandard's callers get (the CronJob controller always adds "TZ=<spec.timeZone> ",
// QStash reads a bare spec in UTC). Each output line is one of
//
//	ok <t1> <t2> ... <tn>    the next n fire times (Unix seconds), each from the previous one
//	ok <t1> ... zero         Next returned the zero time (no fire time within five years)
//	error <message>          ParseStandard refused the spec (or panicked on it)
//
// One process serves every case of a test run, so the test pays for process start-up once.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

func answer(line string) (out string) {
	parts := strings.Split(line, "\t")
	if len(parts) != 4 {
		return "error helper: expected 4 tab-separated fields, got " + strconv.Itoa(len(parts))
	}
	spec, err := strconv.Unquote(parts[0])
	if err != nil {
		return "error helper: the spec is not a quoted string: " + err.Error()
	}
	local, err := time.LoadLocation(parts[1])
	if err != nil {
		return "error helper: bad local zone: " + err.Error()
	}
	start, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "error helper: bad start: " + err.Error()
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil || n < 0 {
		return "error helper: bad count: " + parts[3]
	}
	// ParseStandard indexes past the prefix without checking (e.g. "TZ=UTC" with no space) and
	// panics; callers see that as a refusal, so report it as one.
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("error panic: %v", r)
		}
	}()
	saved := time.Local
	time.Local = local
	defer func() { time.Local = saved }()
	schedule, err := cron.ParseStandard(spec)
	if err != nil {
		return "error " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	var b strings.Builder
	b.WriteString("ok")
	t := time.Unix(start, 0).In(local)
	for i := 0; i < n; i++ {
		t = schedule.Next(t)
		if t.IsZero() {
			b.WriteString(" zero")
			break
		}
		b.WriteString(" ")
		b.WriteString(strconv.FormatInt(t.Unix(), 10))
	}
	return b.String()
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		fmt.Fprintln(out, answer(in.Text()))
		// Flush per line: the caller waits for each answer before it sends the next case.
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}
