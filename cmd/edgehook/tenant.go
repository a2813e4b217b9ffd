package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgehook/edgehook/admin"
)

const tenantUsage = `usage: edgehook tenant <action> [flags] [tenant-id]

actions:
  create --target-url URL [--plan free|pro|enterprise]   create a tenant; prints its API key and signing secret once
  get ID                                                  show a tenant
  update ID [--status active|suspended] [--plan P] [--target-url URL]
  rotate-secret ID                                        make a new signing secret current; the old one stays valid for the rotation window
  keys ID                                                 list the tenant's API keys (never the keys themselves)
  add-key ID --name N --scopes send,read,manage           give the tenant a new API key; prints it once
  rotate-key ID KEY_ID                                    replace a key by a new one with the same name and scopes; prints it once
  revoke-key ID KEY_ID                                    revoke a key`

func runTenant(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(env.stderr, tenantUsage)
		return usageError{errors.New("tenant: no action given")}
	}
	action := args[0]
	var adminURL, token, targetURL, plan, status, keyName, scopes string
	s := newSettings("tenant "+action, env.getenv, env.stderr)
	s.String(&adminURL, "admin-url", "EDGEHOOK_ADMIN_URL", "http://"+admin.DefaultAddr, "admin API base URL (edgehook admin, or the EDGEHOOK_ADMIN_ADDR of up)")
	s.Secret(&token, "admin-token", "EDGEHOOK_ADMIN_TOKEN", "admin API bearer token")
	switch action {
	case "create":
		s.String(&targetURL, "target-url", "", "", "where the tenant's webhooks are delivered")
		s.String(&plan, "plan", "", "", "free, pro or enterprise (default free)")
	case "update":
		s.String(&targetURL, "target-url", "", "", "new target URL")
		s.String(&plan, "plan", "", "", "new plan")
		s.String(&status, "status", "", "", "active or suspended")
	case "add-key":
		s.String(&keyName, "name", "", "", "the key's name, 1-100 characters")
		s.String(&scopes, "scopes", "", "", "comma-separated scopes: send, read, manage")
	case "get", "rotate-secret", "keys", "rotate-key", "revoke-key":
	default:
		fmt.Fprintln(env.stderr, tenantUsage)
		return usageError{fmt.Errorf("tenant: unknown action %q", action)}
	}
	// Flags may follow the ids (`update ID --plan pro`): the flag package stops at the
	// first argument that is not one, so parse again after each.
	var rest []string
	for left := args[1:]; ; {
		if err := s.parse(left); err != nil {
			return err
		}
		if s.fs.NArg() == 0 {
			break
		}
		rest, left = append(rest, s.fs.Arg(0)), s.fs.Args()[1:]
	}
	if token == "" {
		return usageError{errors.New("tenant: EDGEHOOK_ADMIN_TOKEN (or --admin-token) is required")}
	}
	var id, keyID string
	switch action {
	case "create":
	case "rotate-key", "revoke-key":
		if len(rest) != 2 {
			return usageError{fmt.Errorf("tenant %s: want a tenant id and a key id", action)}
		}
		id, keyID = url.PathEscape(rest[0]), url.PathEscape(rest[1])
	default:
		if len(rest) != 1 {
			return usageError{fmt.Errorf("tenant %s: want exactly one tenant id", action)}
		}
		id = url.PathEscape(rest[0])
	}

	var method, path string
	var body any
	fields := map[string]string{}
	body = fields
	switch action {
	case "create":
		if targetURL == "" {
			return usageError{errors.New("tenant create: --target-url is required")}
		}
		method, path = http.MethodPost, "/v1/tenants"
		fields["targetUrl"] = targetURL
		if plan != "" {
			fields["plan"] = plan
		}
	case "get":
		method, path, body = http.MethodGet, "/v1/tenants/"+id, nil
	case "update":
		method, path = http.MethodPatch, "/v1/tenants/"+id
		for k, v := range map[string]string{"targetUrl": targetURL, "plan": plan, "status": status} {
			if v != "" {
				fields[k] = v
			}
		}
		if len(fields) == 0 {
			return usageError{errors.New("tenant update: nothing to change (--status, --plan or --target-url)")}
		}
	case "rotate-secret":
		method, path, body = http.MethodPost, "/v1/tenants/"+id+"/rotate-secret", nil
	case "keys":
		method, path, body = http.MethodGet, "/v1/tenants/"+id+"/keys", nil
	case "add-key":
		if keyName == "" || scopes == "" {
			return usageError{errors.New("tenant add-key: --name and --scopes are required")}
		}
		method, path = http.MethodPost, "/v1/tenants/"+id+"/keys"
		body = map[string]any{"name": keyName, "scopes": strings.Split(scopes, ",")}
	case "rotate-key":
		method, path, body = http.MethodPost, "/v1/tenants/"+id+"/keys/"+keyID+"/rotate", nil
	case "revoke-key":
		method, path, body = http.MethodDelete, "/v1/tenants/"+id+"/keys/"+keyID, nil
	}
	return adminCall(ctx, env, method, strings.TrimRight(adminURL, "/")+path, token, body)
}

// adminCall sends one admin API request and prints the JSON answer; a non-2xx answer is
// an error carrying the API's error message.
func adminCall(ctx context.Context, env *environment, method, u, token string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return usageError{fmt.Errorf("admin API URL: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API (EDGEHOOK_ADMIN_URL): %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API: read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(out, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if len(out) == 0 {
		return nil // 204: nothing to show
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(out)
	}
	pretty.WriteByte('\n')
	_, err = env.stdout.Write(pretty.Bytes())
	return err
}
