package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pushuphq/pushup/broker"
	"github.com/pushuphq/pushup/internal/evhttp"
)

// Server is PushUp's HTTP server. Create it with New, run it with Serve and
// stop it with Shutdown.
type Server struct {
	cfg     Config
	b       *broker.Broker
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *httpMetrics
	router  *chi.Mux
	handler http.Handler
	http    *http.Server
	conns   *evhttp.Limit
	holder  holder      // the model: how waiting subscribes are held
	event   *eventModel // the holder in the event model, for tests
	debug   bool        // debug logging is on: worth a syscall per request for the peer address
	// private are the channels that need a subscriber token; tokens
	// verifies them (nil when no subscriber key is configured).
	private channelPatterns
	tokens  *tokenVerifier
	// publisherKeys are the accepted "Bearer <key>" header values.
	publisherKeys [][]byte
	// perIP counts waiting subscribes per client address (nil: no cap).
	perIP *ipLimiter
	sse   *sseMetrics // event streams (events.go)
}

// New builds a server in front of b.
func New(b *broker.Broker, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.CORSOrigins = slices.Clone(cfg.CORSOrigins)
	s := &Server{cfg: cfg, b: b, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	if err := s.setupAccess(); err != nil {
		return nil, err
	}
	s.reg, s.metrics = newMetrics(b)
	s.debug = s.log.Enabled(context.Background(), slog.LevelDebug)
	s.conns = evhttp.NewLimit(cfg.MaxConns)
	s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pushup_http_refused_connections_total",
		Help: "Requests and connections answered 503 overloaded because the server was at MaxConns.",
	}, func() float64 { return float64(s.conns.Refused()) }))
	s.handler = s.routes()
	s.holder = goroutineModel{s}
	switch {
	case cfg.Model == ModelThread:
		raiseMaxThreads(cfg.MaxThreads)
		m := &threadModel{goroutineModel: goroutineModel{s}, gate: newThreadGate(cfg.MaxThreads, osThreadLimits())}
		s.holder = m
		s.reg.MustRegister(newThreadCollector(m.gate))
		s.log.Info("thread model: each waiting request holds an OS thread", "bounds", m.gate.describe())
	case cfg.Model == ModelEvent && !evhttp.Supported:
		s.log.Warn("the event model needs epoll (Linux); using the goroutine model")
	case cfg.Model == ModelEvent:
		m, err := newEventModel(s)
		if err != nil {
			return nil, err
		}
		s.holder, s.event = m, m
		s.reg.MustRegister(newParkerCollector(m.e.Stats))
	}
	if cfg.Cluster != nil {
		s.reg.MustRegister(cfg.Cluster.Collector())
	}
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		// No WriteTimeout: it would cut long polls. writeResult sets a
		// deadline for each answer instead.
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ConnContext:    connContext,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	// Shutdown closes the listeners first, then runs this: every waiting
	// subscriber gets its cursor, so its handler returns and Shutdown can
	// finish.
	s.http.RegisterOnShutdown(b.Close)
	return s, nil
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	s.router = r
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/", s.handleIndex)
	r.Get("/healthz", s.handleReady)
	r.Get("/healthz/ready", s.handleReady)
	r.Get("/healthz/live", s.handleLive)
	r.Get("/pushup.js", s.handleClientJS)
	r.Head("/pushup.js", s.handleClientJS)
	for _, p := range s.cfg.Plugins {
		p.Mount(r, Front{s})
	}
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))

	if s.cfg.Cluster != nil {
		r.Mount("/internal/v1", s.cfg.Cluster.Handler())
	}
	r.Route("/v1", func(r chi.Router) {
		r.Use(s.requireReady)
		r.With(s.cors).Get("/subscribe", s.handle(s.handleSubscribe))
		r.With(s.cors).Options("/subscribe", s.handleOptions) // preflights end in cors
		s.streamRoutes(r)
		r.Group(func(r chi.Router) {
			r.Use(s.requirePublisherKey)
			r.Post("/publish", s.handle(s.handlePublish))
			r.Post("/channels", s.handle(s.handleCreateChannel))
			r.Put("/channels/{channel}", s.handle(s.handlePutChannel))
			r.Get("/channels/{channel}", s.handle(s.handleGetChannel))
			r.Delete("/channels/{channel}", s.handle(s.handleDeleteChannel))
			r.Post("/channels/{channel}/messages", s.handle(s.handleChannelMessage))
			r.Get("/cluster", s.handleCluster)
		})
	})
	return s.recoverer(s.boundWrites(s.strictFraming(s.shedOverLimit(s.observe(r)))))
}

// handle adapts a handler that returns its error: the one place errors
// become JSON error responses.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Registry returns the Prometheus registry /metrics serves.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown and the accept error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	ln, err := s.holder.listen(ln)
	if err != nil {
		return err
	}
	err = s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeTLS is Serve over TLS with the given certificate and key files.
// Clients may speak HTTP/2. TLS connections cannot be parked by the event
// model, so their waiting subscribes hold a goroutine as in
// ModelGoroutine.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	err := s.http.ServeTLS(ln, certFile, keyFile)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, answers every waiting subscriber
// with its cursor (closing the broker), and waits for handlers to finish.
// If ctx ends first it closes the remaining connections and returns the
// context's error.
func (s *Server) Shutdown(ctx context.Context) error {
	// Publishers first, then the waiting subscribers, spread out; the
	// readiness check fails meanwhile, so the load balancer sends new
	// requests elsewhere.
	s.b.Drain(ctx, s.cfg.DrainSpread)
	err := s.http.Shutdown(ctx)
	s.b.Close() // in case Shutdown returned before the hook ran
	// http.Server does not track hijacked connections: wait for the
	// event engine to write the answers the broker just gave.
	if herr := s.holder.shutdown(ctx); err == nil {
		err = herr
	}
	if err != nil {
		s.http.Close()
	}
	return err
}

// Model returns the model in use (ModelGoroutine when the event model was
// asked for but is not supported here).
func (s *Server) Model() Model { return s.holder.model() }

// healthBody answers the health checks.
type healthBody struct {
	Status string `json:"status"`
	Live   bool   `json:"live"`
	Ready  bool   `json:"ready"`
	// Partitioned is set while a cluster node reaches no majority of its
	// members. It still serves (its own side of the partition), so the
	// check stays 200; the field lets a monitor tell.
	Partitioned bool `json:"partitioned,omitempty"`
}

// partitioner is a cluster that can tell it is cut off from most members.
type partitioner interface{ Partitioned() bool }

// partitioned reports whether the node's cluster says it is partitioned.
func (s *Server) partitioned() bool {
	p, ok := s.cfg.Cluster.(partitioner)
	return ok && p.Partitioned()
}

// notReady says why the node does not serve yet (or any more), or "".
func (s *Server) notReady() string {
	switch {
	case s.b.Closed() || s.b.Draining():
		return "shutting_down"
	case s.cfg.Cluster != nil && !s.cfg.Cluster.Ready():
		return "not_ready"
	}
	return ""
}

// handleReady answers GET /healthz and /healthz/ready: 200 when the node
// serves, 503 while it joins its cluster and once shutdown began, so a
// load balancer sends requests only to nodes that can answer them.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if why := s.notReady(); why != "" {
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Status: why, Live: true, Partitioned: s.partitioned()})
		return
	}
	writeJSON(w, http.StatusOK, healthBody{Status: "ok", Live: true, Ready: true, Partitioned: s.partitioned()})
}

// handleLive answers GET /healthz/live: 200 while the process runs and
// answers at all, ready or not.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthBody{Status: "ok", Live: true, Ready: s.notReady() == ""})
}

// clusterNotReady reports a node still joining its cluster: API
// requests wait for it, unless the node is closing anyway.
func (s *Server) clusterNotReady() bool {
	return s.cfg.Cluster != nil && !s.cfg.Cluster.Ready() && !s.b.Closed()
}

// errNotReady answers API requests while the node joins its cluster.
var errNotReady = &apiError{status: http.StatusServiceUnavailable, code: "not_ready",
	msg: "this node is joining its cluster and does not serve yet; retry, or use another node"}

// requireReady refuses API requests while the node is not ready.
func (s *Server) requireReady(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.clusterNotReady() {
			s.writeError(w, r, errNotReady)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleCluster serves GET /v1/cluster: members, their state, the
// replication mode and per-member replication lag.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Cluster == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not_clustered", Message: "this node runs alone (no -cluster-bind or -join)"})
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Cluster.Status())
}

// handleOptions answers a plain OPTIONS (not a CORS preflight).
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, OPTIONS")
	w.WriteHeader(http.StatusNoContent)
}
