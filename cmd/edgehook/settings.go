package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// settings builds a command's flag set where every flag falls back to an environment
// variable, then to a default. A malformed environment value is an error that names the
// variable, reported by parse.
type settings struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
	envs   map[string]string // flag name -> env variable, for docs and job checks
}

func newSettings(name string, getenv func(string) string, stderr io.Writer) *settings {
	fs := flag.NewFlagSet("edgehook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &settings{fs: fs, getenv: getenv, envs: map[string]string{}}
}

func (s *settings) env(name, env string) (string, bool) {
	s.envs[name] = env
	if env == "" {
		return "", false
	}
	v := s.getenv(env)
	return v, v != ""
}

func envUsage(usage, env string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

// String registers a string flag.
func (s *settings) String(p *string, name, env, def, usage string) {
	if v, ok := s.env(name, env); ok {
		def = v
	}
	s.fs.StringVar(p, name, def, envUsage(usage, env))
}

// Secret registers a string flag whose default is never printed in help output.
func (s *settings) Secret(p *string, name, env, usage string) {
	v, _ := s.env(name, env)
	*p = v
	s.fs.Func(name, envUsage(usage, env), func(x string) error { *p = x; return nil })
}

// Int registers an int flag.
func (s *settings) Int(p *int, name, env string, def int, usage string) {
	if v, ok := s.env(name, env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	s.fs.IntVar(p, name, def, envUsage(usage, env))
}

// Duration registers a time.Duration flag.
func (s *settings) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := s.env(name, env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not a duration (like 10s or 5m)", env, v))
		} else {
			def = d
		}
	}
	s.fs.DurationVar(p, name, def, envUsage(usage, env))
}

// Bool registers a bool flag.
func (s *settings) Bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := s.env(name, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s=%q: not true or false", env, v))
		} else {
			def = b
		}
	}
	s.fs.BoolVar(p, name, def, envUsage(usage, env))
}

// parse parses args and returns the first malformed environment value or flag.
func (s *settings) parse(args []string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if len(s.errs) > 0 {
		return usageError{s.errs[0]}
	}
	return nil
}

// usageError marks a mistake in the command line or environment (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// parseLogged registers --log-level, parses args and returns the JSON logger of a
// service at that level, writing to stderr.
func (s *settings) parseLogged(args []string, stderr io.Writer) (*slog.Logger, error) {
	var level string
	s.String(&level, "log-level", "EDGEHOOK_LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.parse(args); err != nil {
		return nil, err
	}
	return newLogger(stderr, level)
}
