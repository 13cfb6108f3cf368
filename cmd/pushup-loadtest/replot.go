package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pushuphq/pushup/loadtest"
)

// runReplot redraws committed results from their JSON: the tables (.txt,
// .md) and the figures, next to the JSON, without running anything.
func runReplot(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pushup-loadtest replot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	formats := fs.String("formats", strings.Join(loadtest.PlotFormats, ","), "figure formats to write, comma-separated: svg, png")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushup-loadtest replot [flags] REPORT.json...\n\n"+
			"Redraws the tables and figures of push-vs-pull, event-vs-thread or scale-out results\n"+
			"from the JSON a run wrote with -out, into the JSON's directory, without running\n"+
			"anything; the measurements are kept as they are. For example:\n"+
			"  pushup-loadtest replot docs/results/*/*.json\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("replot: no report given: %w", errUsage)
	}
	plots, err := wordList(*formats, loadtest.PlotFormats)
	if err != nil {
		return fmt.Errorf("-formats: %w", err)
	}
	for _, name := range fs.Args() {
		if err := replot(name, plots, stderr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// replot redraws one report.
func replot(name string, formats []string, stderr io.Writer) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	rep, err := loadtest.ReadReport(f)
	f.Close()
	if err != nil {
		return err
	}
	if err := rep.Redraw(); err != nil {
		return err
	}
	files, err := rep.WriteFiles(filepath.Dir(name), formats)
	for _, w := range files {
		fmt.Fprintln(stderr, "wrote", w)
	}
	return err
}
