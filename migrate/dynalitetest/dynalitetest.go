// Package dynalitetest runs dynalite, a DynamoDB-compatible server from the npm registry
// (pinned in package.json, installed into node_modules by `make tools`), for tests: a
// child process on a free 127.0.0.1 port, in memory, killed when the test ends.
package dynalitetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// Credentials and region of the test server's clients: dynalite checks that requests
// are signed, not by whom.
const (
	Region          = "us-east-1"
	AccessKeyID     = "dynalitetest"
	SecretAccessKey = "dynalitetest"
)

// Server is a running dynalite process.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:<port> (AWS_ENDPOINT_URL).
	Endpoint string

	cmd    *exec.Cmd
	out    *buffer
	exited chan struct{}
}

// Start runs dynalite on a free 127.0.0.1 port and waits until it answers. It fails
// the test if dynalite is not installed (run `make tools`).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatalf("dynalitetest: %v", err)
	}
	var last error
	for range 3 { // another process may take the free port before dynalite binds it
		s, err := start(bin)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		last = err
	}
	t.Fatalf("dynalitetest: %v", last)
	return nil
}

// binary finds node_modules/.bin/dynalite in the module root, above the working
// directory.
func binary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			bin := filepath.Join(dir, "node_modules", ".bin", "dynalite")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("dynalite is not installed in %s (run `make tools`, which runs npm ci): %w", filepath.Dir(bin), err)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory, so no node_modules to find dynalite in")
		}
		dir = parent
	}
}

func start(bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), out: &buffer{}, exited: make(chan struct{})}
	// Tables become ACTIVE at once instead of after dynalite's default half second.
	s.cmd = exec.Command(bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(20 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls ListTables until dynalite answers, it exits, or limit passes.
func (s *Server) waitReady(limit time.Duration) error {
	c := s.newClient()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("dynalite exited before answering: %s", s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dynalite at %s did not answer within %s: %v\n%s", s.Endpoint, limit, err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) newClient() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
}

// Client returns a DynamoDB client of the server.
func (s *Server) Client(t testing.TB) *dynamodb.Client {
	t.Helper()
	return s.newClient()
}

// Env returns the standard AWS environment that points a program at the server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":      s.Endpoint,
		"AWS_REGION":            Region,
		"AWS_ACCESS_KEY_ID":     AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": SecretAccessKey,
	}
}

// CreateTable creates an on-demand table whose partition key is the string attribute
// hashKey.
func (s *Server) CreateTable(t testing.TB, name, hashKey string) {
	t.Helper()
	_, err := s.newClient().CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(hashKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(hashKey), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("dynalitetest: create table %s: %v", name, err)
	}
}

// PutItems writes items with BatchWriteItem, 25 per call and 8 calls at a time,
// retrying unprocessed items.
func (s *Server) PutItems(t testing.TB, table string, items []map[string]types.AttributeValue) {
	t.Helper()
	c := s.newClient()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(8)
	for start := 0; start < len(items); start += 25 {
		chunk := items[start:min(start+25, len(items))]
		g.Go(func() error {
			reqs := make([]types.WriteRequest, len(chunk))
			for i, it := range chunk {
				reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
			}
			pending := map[string][]types.WriteRequest{table: reqs}
			for attempt := 0; len(pending[table]) > 0; attempt++ {
				if attempt == 10 {
					return fmt.Errorf("%d items still unprocessed", len(pending[table]))
				}
				out, err := c.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: pending})
				if err != nil {
					return err
				}
				pending = out.UnprocessedItems
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("dynalitetest: write %d items to %s: %v", len(items), table, err)
	}
}

// buffer is a goroutine-safe output buffer.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
