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

// RunAll runs every run in order whatever fails, and returns each run's
// result (partial if it failed) and error, nil when it succeeded: in a
// sweep, a setup that cannot hold N subscribers is a result, not the end
// of the experiment. Only ctx ending stops it early; the runs not started
// then get ctx's error. before, if not nil, is called before run i.
func (e Experiment) RunAll(ctx context.Context, before func(i int)) ([]RunResult, []error) {
	results := make([]RunResult, len(e.Runs))
	errs := make([]error, len(e.Runs))
	for i, rc := range e.Runs {
		if ctx.Err() != nil {
			results[i].Name = rc.Name
			errs[i] = fmt.Errorf("%s: run %q not started: %w", e.Name, rc.Name, ctx.Err())
			continue
		}
		if before != nil {
			before(i)
		}
		r, err := Run(ctx, rc)
		if err != nil {
			err = fmt.Errorf("%s: run %q: %w", e.Name, rc.Name, err)
		}
		results[i], errs[i] = r, err
	}
	return results, errs
}
