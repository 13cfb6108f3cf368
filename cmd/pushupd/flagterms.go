package main

import (
	"flag"
	"reflect"
	"regexp"
	"strings"
)

// flagTerms rewrites a library's configuration error in pushupd's terms.
// The libraries name their Go fields, as their Go callers see them
// ("broker: MaxBatch must be at least 1"); a person who ran pushupd set a
// flag, so each field a flag sets is named by it, and the package prefix
// goes ("-max-batch must be at least 1"). The error still wraps the
// original.
func flagTerms(err error, fs *flag.FlagSet, c *config) error {
	if err == nil {
		return nil
	}
	fields := map[uintptr]string{} // a leaf field's address: its name
	collectFields(reflect.ValueOf(c).Elem(), fields)
	flags := map[string]string{} // a field's name: its flag
	taken := map[string]bool{}   // names two flags' fields share: ambiguous
	fs.VisitAll(func(f *flag.Flag) {
		v := reflect.ValueOf(f.Value)
		if v.Kind() != reflect.Pointer {
			return
		}
		name, ok := fields[v.Pointer()]
		if !ok {
			return
		}
		if _, dup := flags[name]; dup {
			taken[name] = true
		}
		flags[name] = "-" + f.Name
	})
	msg := err.Error()
	for _, prefix := range []string{"api: ", "broker: ", "channel: ", "cluster: "} {
		msg = strings.ReplaceAll(msg, prefix, "")
	}
	for name, flagName := range flags {
		if !taken[name] {
			msg = regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).ReplaceAllLiteralString(msg, flagName)
		}
	}
	return &flagError{msg: msg, err: err}
}

// collectFields records the address and name of every field below v that
// is not itself a struct.
func collectFields(v reflect.Value, out map[uintptr]string) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			collectFields(f, out)
		case f.CanAddr():
			out[f.Addr().Pointer()] = v.Type().Field(i).Name
		}
	}
}

type flagError struct {
	msg string
	err error
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }
