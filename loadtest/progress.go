package loadtest

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// progress prints one status line per interval while a run goes on, so a
// person watching a two-minute run sees it move (and sees it stall).
type progress struct {
	w     io.Writer
	start time.Time
	phase atomic.Pointer[string]
	pop   *Population
	pubs  []*Publisher
	mon   *Monitor
	// waiting is the servers' pushup_waiting_subscribers at the last
	// scrape, -1 when not scraped.
	waiting atomic.Int64

	stop chan struct{}
	done chan struct{}
}

func startProgress(w io.Writer, interval time.Duration, pop *Population, pubs []*Publisher, mon *Monitor) *progress {
	p := &progress{w: w, start: time.Now(), pop: pop, pubs: pubs, mon: mon, stop: make(chan struct{}), done: make(chan struct{})}
	p.waiting.Store(-1)
	p.setPhase("start")
	if w == nil {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintln(p.w, p.line())
			}
		}
	}()
	return p
}

func (p *progress) setPhase(s string) { p.phase.Store(&s) }

// line formats the current state.
func (p *progress) line() string {
	s := fmt.Sprintf("[%6.1fs] %-8s", time.Since(p.start).Seconds(), *p.phase.Load())
	st := p.pop.Stats()
	s += fmt.Sprintf(" conns %d started %d in-flight %d", st.Connected, st.Started, st.InFlight)
	if w := p.waiting.Load(); w >= 0 {
		s += fmt.Sprintf(" server-waiting %d", w)
	}
	var published int64
	for _, pub := range p.pubs {
		published += pub.Sent()
	}
	s += fmt.Sprintf(" published %d received %d dup %d errors %d", published, st.Received, st.Duplicates, st.Errors)
	if t, ok := p.mon.Last(); ok {
		s += fmt.Sprintf(" rss %.1f MiB", float64(t.Total.RSS)/(1<<20))
	}
	return s
}

// end stops the printer and waits for it.
func (p *progress) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}
