package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Group is one start of an app: its instances, on addresses fixed for the group's life. A restart of the
// app is a new Group. An on-demand group (Spec.OnDemand) starts its instances on the first request that
// needs them and stops them after Spec.IdleTimeout without a request, on the same addresses each time.
type Group struct {
	m     *Manager
	spec  Spec
	path  string // the program, looked up once
	seq   int
	addrs []Addr
	cred  *syscall.Credential // nil: the gateway's own user

	refs     int  // gateways using the group (guarded by m.mu)
	current  bool // in the current configuration (guarded by m.mu)
	stopOnce sync.Once
	quit     chan struct{} // closed by stop: ends idleLoop

	mu        sync.Mutex
	instances []*instance   // nil while an on-demand group is idle
	starting  chan struct{} // closed when the launch in progress ends
	idling    chan struct{} // closed when the idle stop in progress ends
	lastErr   error         // the last launch's failure
	failedAt  time.Time
	inflight  int
	lastUse   time.Time
	stopped   bool
}

// Addrs are the group's instance addresses, in instance order.
func (g *Group) Addrs() []Addr { return append([]Addr(nil), g.addrs...) }

// Spec is what the group runs.
func (g *Group) Spec() Spec { return g.spec }

func (g *Group) running() []*instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.instances
}

// retryAfterFailure is how long an on-demand app that failed to start answers with that failure before a
// request tries to start it again: a broken app is not relaunched by every request.
const retryAfterFailure = time.Second

// activate launches the instances unless they run, and waits until they accept (or ctx ends).
func (g *Group) activate(ctx context.Context) error {
	g.mu.Lock()
	for {
		switch {
		case g.stopped:
			g.mu.Unlock()
			return errors.New("the app was stopped (a restart or reload replaced it)")
		case g.instances != nil:
			g.mu.Unlock()
			return nil
		case g.starting != nil || g.idling != nil:
			ch := g.starting
			if ch == nil {
				ch = g.idling
			}
			g.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("gave up waiting for the app to start: %v", ctx.Err())
			}
			g.mu.Lock()
			if ch == g.starting || (g.instances == nil && g.lastErr != nil && time.Since(g.failedAt) < retryAfterFailure) {
				err := g.lastErr
				g.mu.Unlock()
				return err
			}
			continue
		case g.lastErr != nil && time.Since(g.failedAt) < retryAfterFailure:
			err := g.lastErr
			g.mu.Unlock()
			return err
		}
		break
	}
	ch := make(chan struct{})
	g.starting = ch
	g.mu.Unlock()

	// The launch is not bound to the request that triggered it: it ends by the start timeout, and
	// the requests waiting for it may each give up sooner.
	ins, err := g.launch(context.Background())
	g.mu.Lock()
	stopped := g.stopped
	if err == nil && !stopped {
		g.instances, g.lastErr, g.lastUse = ins, nil, time.Now()
	} else if err != nil {
		g.lastErr, g.failedAt = err, time.Now()
	}
	g.mu.Unlock()
	if err == nil && stopped {
		stopInstances(ins) // before the channel closes: stop waits for it
		err = errors.New("the app was stopped (a restart or reload replaced it)")
	}
	g.mu.Lock()
	g.starting = nil
	close(ch)
	g.mu.Unlock()
	return err
}

// launch starts one process per address and waits until each accepts; on failure it stops them all.
func (g *Group) launch(ctx context.Context) ([]*instance, error) {
	m, s := g.m, g.spec
	var ins []*instance
	for i, addr := range g.addrs {
		in := &instance{app: g, index: i, addr: addr, stopping: make(chan struct{}), done: make(chan struct{}),
			readyResult: make(chan error, 1), state: StateStarting}
		for _, a := range s.Command {
			in.argv = append(in.argv, Expand(a, addr, i))
		}
		in.env = m.environ(s, addr, i)
		ins = append(ins, in)
	}
	for _, in := range ins {
		go in.supervise()
	}
	var errs []error
	for _, in := range ins {
		select {
		case err := <-in.readyResult:
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: run app %q: instance %d: %v", s.Source, s.Name, in.index, err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: run app %q: start abandoned: %v", s.Source, s.Name, ctx.Err()))
		}
	}
	if len(errs) > 0 {
		stopInstances(ins)
		return nil, errors.Join(errs...)
	}
	m.logger.Info("run app started", "app", s.Name, "command", s.String(), "instances", len(ins), "addrs", addrList(g.addrs))
	return ins, nil
}

// use counts a request on the group, starting an on-demand group first (see Plan.Use).
func (g *Group) use(ctx context.Context) (func(), error) {
	if !g.spec.OnDemand {
		if live, why := g.live(); !live {
			return nil, errors.New(why)
		}
		return noRelease, nil
	}
	g.mu.Lock()
	release := g.holdLocked() // before the start, so an idle stop cannot come between the start and the request
	g.mu.Unlock()
	if err := g.activate(ctx); err != nil {
		release()
		return nil, err
	}
	if live, why := g.live(); !live {
		release()
		return nil, errors.New(why)
	}
	return release, nil
}

// admit is use without waiting (Plan.Admit).
func (g *Group) admit() (func(), bool) {
	if !g.spec.OnDemand {
		return noRelease, g.serving()
	}
	g.mu.Lock()
	if g.stopped || g.instances == nil {
		g.mu.Unlock()
		return nil, false
	}
	release := g.holdLocked()
	g.mu.Unlock()
	if !g.serving() {
		release()
		return nil, false
	}
	return release, true
}

// noRelease is the release of a use that counts nothing.
func noRelease() {}

// holdLocked counts a request in flight on an on-demand group (no idle stop under it) and returns its
// release, which counts it done once. g.mu is held.
func (g *Group) holdLocked() func() {
	g.inflight++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inflight--
			g.lastUse = time.Now()
			g.mu.Unlock()
		})
	}
}

// serving reports whether an instance accepts connections (live's answer, without the reasons).
func (g *Group) serving() bool {
	for _, in := range g.running() {
		in.mu.Lock()
		st := in.state
		in.mu.Unlock()
		if st == StateRunning {
			return true
		}
	}
	return false
}

// live reports whether an instance accepts connections, and when none does, why.
func (g *Group) live() (bool, string) {
	ins := g.running()
	if ins == nil {
		return false, "not started"
	}
	var why []string
	for _, in := range ins {
		st := in.status()
		if st.State == StateRunning {
			return true, ""
		}
		w := fmt.Sprintf("instance %d %s", st.Instance, st.State)
		if st.LastExit != "" {
			w += " (last exit: " + st.LastExit + ")"
		}
		why = append(why, w)
	}
	return false, "no live instance: " + strings.Join(why, ", ")
}

// idleLoop stops an on-demand group's instances once they have served no request for the idle timeout.
func (g *Group) idleLoop() {
	idle := g.spec.idleTimeout()
	tick := time.NewTicker(min(idle/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-g.quit:
			return
		case <-tick.C:
		}
		g.mu.Lock()
		if g.instances == nil || g.inflight > 0 || g.starting != nil || time.Since(g.lastUse) < idle {
			g.mu.Unlock()
			continue
		}
		ins := g.instances
		g.instances = nil
		ch := make(chan struct{})
		g.idling = ch
		g.mu.Unlock()
		g.m.logger.Info("run app idle; stopping it until its next request", "app", g.spec.Name, "idle_timeout", idle)
		stopInstances(ins)
		g.mu.Lock()
		g.idling = nil
		close(ch)
		g.mu.Unlock()
	}
}

// failed reports whether every instance of a running group gave up restarting.
func (g *Group) failed() bool {
	ins := g.running()
	if ins == nil {
		return false
	}
	for _, in := range ins {
		if in.status().State != StateFailed {
			return false
		}
	}
	return true
}

// status lists the group's instances; an idle on-demand group lists its addresses as idle.
func (g *Group) status() []Status {
	ins := g.running()
	if ins == nil {
		out := make([]Status, len(g.addrs))
		for i, a := range g.addrs {
			out[i] = Status{App: g.spec.Name, Instance: i, Address: a.Address, State: StateIdle}
		}
		return out
	}
	out := make([]Status, len(ins))
	for i, in := range ins {
		out[i] = in.status()
	}
	return out
}

// stop stops every instance (in parallel) for good and waits for them.
func (g *Group) stop() {
	g.stopOnce.Do(func() {
		close(g.quit)
		g.mu.Lock()
		g.stopped = true
		wait := []chan struct{}{g.starting, g.idling}
		g.mu.Unlock()
		for _, ch := range wait {
			if ch != nil {
				<-ch // a launch that sees stopped stops what it started; an idle stop finishes
			}
		}
		g.mu.Lock()
		ins := g.instances // installed by a launch that ended before it saw stopped
		g.instances = nil
		g.mu.Unlock()
		stopInstances(ins)
		g.m.mu.Lock()
		delete(g.m.live, g)
		g.m.mu.Unlock()
	})
}

// stopInstances stops instances in parallel and removes their sockets.
func stopInstances(ins []*instance) {
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			close(in.stopping)
			<-in.done
			if in.addr.Network == "unix" {
				os.Remove(in.addr.Address)
			}
		}()
	}
	wg.Wait()
}
