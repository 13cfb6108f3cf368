package loadtest

import (
	"context"
	"fmt"
)

// Experiment is a named list of runs, run one after the other: the
// paper's comparisons (push vs pull, event vs thread, scale-out) are each
// a few runs that differ in one setting.
type Experiment struct {
	Name string
	Runs []RunConfig
}

// Run runs every run in order. It stops at the first error and returns
// the results so far with it.
func (e Experiment) Run(ctx context.Context) ([]RunResult, error) {
	out := make([]RunResult, 0, len(e.Runs))
	for _, rc := range e.Runs {
		r, err := Run(ctx, rc)
		if err != nil {
			return out, fmt.Errorf("%s: run %q: %w", e.Name, rc.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}
