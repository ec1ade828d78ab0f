package gateway

import (
	"encoding"
	"fmt"
	"reflect"

	"github.com/switchyard/switchyard/config"
)

// FrontSettings are the settings the listener stack reads: NewFront, Server, ScanHeads, LimitListener,
// ParkIdle and NewHTTP3 take them from here (FrontSettingsOf) and from nowhere else in the configuration.
// They apply when a listener starts, so a reload cannot change them: RestartSettings holds them, and a
// field added here is reported by Reloader as needing a restart without being listed again.
//
// Each field's setting tag names the variable it comes from, for that report; a what tag says what the
// field is when it is not the variable's value itself.
type FrontSettings struct {
	Addr string `setting:"GATEWAY_ADDR"`
	// TLS is GATEWAY_TLS_CERT set (or a TLS configuration given to NewFront): no head scan, no parking,
	// refusals closed without an answer.
	TLS               bool            `setting:"GATEWAY_TLS_CERT" what:"TLS on/off"`
	ReadHeaderTimeout config.Duration `setting:"GATEWAY_READ_HEADER_TIMEOUT"`
	IdleTimeout       config.Duration `setting:"GATEWAY_IDLE_TIMEOUT"`
	IdleParkAfter     config.Duration `setting:"GATEWAY_IDLE_PARK_AFTER"`
	FastLane          bool            `setting:"GATEWAY_FAST_LANE"`
	FastLaneLoops     int             `setting:"GATEWAY_FAST_LANE_LOOPS"`
	MaxHeaderSize     config.Size     `setting:"GATEWAY_MAX_HEADER_SIZE"`
	MaxConns          int             `setting:"GATEWAY_MAX_CONNS"`
	MaxConnsPerClient int             `setting:"GATEWAY_MAX_CONNS_PER_CLIENT"`
}

// FrontSettingsOf takes the listener stack's settings out of cfg.
func FrontSettingsOf(cfg config.Config) FrontSettings {
	return FrontSettings{
		Addr: cfg.Addr, TLS: cfg.TLSCert != "",
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, IdleTimeout: cfg.IdleTimeout, IdleParkAfter: cfg.IdleParkAfter,
		FastLane: cfg.FastLane, FastLaneLoops: cfg.FastLaneLoops,
		MaxHeaderSize: cfg.MaxHeaderSize, MaxConns: cfg.MaxConns, MaxConnsPerClient: cfg.MaxConnsPerClient,
	}
}

// RestartSettings are every setting a running process reads once, at start, and a reload therefore cannot
// change: the listener stack's (Front), and those the gateway command reads when it starts its other
// listeners, its certificate source, its drain and its logger. Reloader compares them as a whole between the
// configuration the listeners started with and a reloaded one, and names each field that differs (its
// setting tag) as needing a restart. Everything else in config.Config takes effect on reload.
type RestartSettings struct {
	Front       FrontSettings
	AdminAddr   string `setting:"GATEWAY_ADMIN_ADDR"`
	AdminPprof  bool   `setting:"GATEWAY_ADMIN_PPROF"`
	ACME        bool   `setting:"GATEWAY_ACME"`
	ACMECA      string `setting:"GATEWAY_ACME_CA"`
	ACMEEmail   string `setting:"GATEWAY_ACME_EMAIL"`
	ACMEStorage string `setting:"GATEWAY_ACME_STORAGE"`
	ACMECARoot  string `setting:"GATEWAY_ACME_CA_ROOT"`
	HTTPAddr    string `setting:"GATEWAY_HTTP_ADDR"`
	HTTP3       bool   `setting:"GATEWAY_HTTP3"`
	// ShutdownTimeout bounds the drain of the process that started with it.
	ShutdownTimeout config.Duration `setting:"GATEWAY_SHUTDOWN_TIMEOUT"`
	LogFormat       string          `setting:"GATEWAY_LOG_FORMAT"`
	LogLevel        string          `setting:"GATEWAY_LOG_LEVEL"`
}

// RestartSettingsOf takes the settings only a restart applies out of cfg.
func RestartSettingsOf(cfg config.Config) RestartSettings {
	return RestartSettings{
		Front: FrontSettingsOf(cfg), AdminAddr: cfg.AdminAddr, AdminPprof: cfg.AdminPprof,
		ACME: cfg.ACME, ACMECA: cfg.ACMECA, ACMEEmail: cfg.ACMEEmail, ACMEStorage: cfg.ACMEStorage, ACMECARoot: cfg.ACMECARoot,
		HTTPAddr: cfg.HTTPAddr, HTTP3: cfg.HTTP3, ShutdownTimeout: cfg.ShutdownTimeout, LogFormat: cfg.LogFormat, LogLevel: cfg.LogLevel,
	}
}

// RestartChange is one setting that differs between two RestartSettings.
type RestartChange struct {
	// Variable is the setting's variable (GATEWAY_ADDR); What, when not "", says what of it changed
	// ("TLS on/off").
	Variable, What string
	// Running and Configured print the two values.
	Running, Configured string
}

// Changes lists the settings whose value differs in next, in declaration order.
func (s RestartSettings) Changes(next RestartSettings) []RestartChange {
	if s == next {
		return nil
	}
	var out []RestartChange
	var walk func(a, b reflect.Value)
	walk = func(a, b reflect.Value) {
		for i := 0; i < a.NumField(); i++ {
			f := a.Type().Field(i)
			if f.Type.Kind() == reflect.Struct && f.Tag.Get("setting") == "" {
				walk(a.Field(i), b.Field(i))
				continue
			}
			if x, y := a.Field(i).Interface(), b.Field(i).Interface(); x != y {
				out = append(out, RestartChange{Variable: f.Tag.Get("setting"), What: f.Tag.Get("what"), Running: settingText(x), Configured: settingText(y)})
			}
		}
	}
	walk(reflect.ValueOf(s), reflect.ValueOf(next))
	return out
}

// settingText prints a setting the way the configuration spells it (10s, 64KiB).
func settingText(v any) string {
	if m, ok := v.(encoding.TextMarshaler); ok {
		if b, err := m.MarshalText(); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}
