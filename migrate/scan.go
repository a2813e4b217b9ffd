package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// batchGetLimit is DynamoDB's limit on the keys of one BatchGetItem.
const batchGetLimit = 100

// unprocessedRetries bounds the retries of keys BatchGetItem left unprocessed
// (throttling), beyond the SDK's own retries of failed requests.
const unprocessedRetries = 8

func describeInput(table string) *dynamodb.DescribeTableInput {
	return &dynamodb.DescribeTableInput{TableName: aws.String(table)}
}

// scan reads table with Config.Segments parallel segments, each paginated, handing each
// page's items to page. projection, when set, limits the attributes read.
func (r *run) scan(ctx context.Context, table, projection string, page func(context.Context, []item) error) error {
	g, ctx := errgroup.WithContext(ctx)
	n := r.m.cfg.Segments
	for seg := range n {
		g.Go(func() error {
			in := &dynamodb.ScanInput{TableName: aws.String(table)}
			if n > 1 {
				in.Segment, in.TotalSegments = aws.Int32(int32(seg)), aws.Int32(int32(n))
			}
			if r.m.cfg.PageSize > 0 {
				in.Limit = aws.Int32(int32(min(r.m.cfg.PageSize, 1<<30)))
			}
			if projection != "" {
				in.ProjectionExpression = aws.String(projection)
			}
			for {
				out, err := r.m.deps.DynamoDB.Scan(ctx, in)
				if err != nil {
					return fmt.Errorf("migrate: scan %s (segment %d of %d): %w", table, seg, n, err)
				}
				if err := page(ctx, out.Items); err != nil {
					return err
				}
				if len(out.LastEvaluatedKey) == 0 {
					return nil
				}
				in.ExclusiveStartKey = out.LastEvaluatedKey
			}
		})
	}
	return g.Wait()
}

// identityPage handles a page of the identity table: each item is joined with its
// tenant's item of the config table, read in batches.
func (r *run) identityPage(ctx context.Context, items []item) error {
	parts := make([]identityPart, 0, len(items))
	for _, it := range items {
		r.read.Add(1)
		p, err := parseIdentityItem(it)
		if p.tenantID != "" {
			r.markSeen(p.tenantID)
		}
		if err != nil {
			r.fail(r.m.cfg.IdentityTable, p.tenantID, p.apiKey, err)
			continue
		}
		parts = append(parts, p)
	}
	for len(parts) > 0 {
		// Up to batchGetLimit distinct tenants per batch.
		ids := map[string]bool{}
		n := 0
		for n < len(parts) && (len(ids) < batchGetLimit || ids[parts[n].tenantID]) {
			ids[parts[n].tenantID] = true
			n++
		}
		batch := parts[:n]
		parts = parts[n:]
		configs, throttled, err := r.getConfigs(ctx, ids)
		if err != nil {
			return err
		}
		for _, p := range batch {
			it, ok := configs[p.tenantID]
			if throttled[p.tenantID] {
				r.fail(r.m.cfg.ConfigTable, p.tenantID, p.apiKey, fmt.Errorf("migrate: %s item not read: DynamoDB kept throttling the batch read", r.m.cfg.ConfigTable))
				continue
			}
			if !ok {
				r.fail(r.m.cfg.ConfigTable, p.tenantID, p.apiKey, fmt.Errorf("%w: %w", ErrInvalidRecord, errNoConfig))
				continue
			}
			c, err := parseConfigItem(it)
			if err == nil && c.tenantID != p.tenantID {
				err = badField("tenantId", "does not match the key it was read by")
			}
			if err != nil {
				r.fail(r.m.cfg.ConfigTable, p.tenantID, p.apiKey, err)
				continue
			}
			if err := r.sendRecord(ctx, r.m.cfg.ConfigTable, p, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// legacyPage handles a page of the single legacy table.
func (r *run) legacyPage(ctx context.Context, table string, items []item) error {
	for _, it := range items {
		r.read.Add(1)
		p, c, err := parseLegacyItem(it)
		if err != nil {
			r.fail(table, p.tenantID, p.apiKey, err)
			continue
		}
		if err := r.sendRecord(ctx, table, p, c); err != nil {
			return err
		}
	}
	return nil
}

// sendRecord builds a record and queues it; a record that cannot be built is a
// failure in configTable (the rotation history is the only part checked here).
func (r *run) sendRecord(ctx context.Context, configTable string, p identityPart, c configPart) error {
	rec, err := newRecord(p, c, r.m.deps.Now(), r.m.cfg.RotationWindow)
	if err != nil {
		r.fail(configTable, p.tenantID, p.apiKey, err)
		return nil
	}
	return r.send(ctx, rec)
}

// orphanPage handles a page of tenant ids of the config table: a configuration that no
// identity item names has no API key, so it is not migrated, and is reported.
func (r *run) orphanPage(_ context.Context, items []item) error {
	for _, it := range items {
		id, err := parseTenantID(it)
		if id != "" && r.wasSeen(id) {
			continue // handled, or failed, with its identity item
		}
		r.read.Add(1)
		if err == nil {
			err = fmt.Errorf("%w: no item of the identity table has this tenantId, so the tenant has no API key", ErrInvalidRecord)
		}
		r.fail(r.m.cfg.ConfigTable, id, "", err)
	}
	return nil
}

// getConfigs reads the config table's items of ids with BatchGetItem, retrying keys
// left unprocessed (throttled) with backoff; those still unprocessed after that are
// returned in left.
func (r *run) getConfigs(ctx context.Context, ids map[string]bool) (got map[string]item, left map[string]bool, err error) {
	table := r.m.cfg.ConfigTable
	keys := make([]item, 0, len(ids))
	for id := range ids {
		keys = append(keys, item{"tenantId": &types.AttributeValueMemberS{Value: id}})
	}
	got = make(map[string]item, len(ids))
	req := map[string]types.KeysAndAttributes{table: {Keys: keys}}
	for attempt := 0; ; attempt++ {
		out, err := r.m.deps.DynamoDB.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, nil, fmt.Errorf("migrate: read %s: %w", table, err)
		}
		for _, it := range out.Responses[table] {
			if s, ok := it["tenantId"].(*types.AttributeValueMemberS); ok {
				got[s.Value] = it
			}
		}
		rest, ok := out.UnprocessedKeys[table]
		if !ok || len(rest.Keys) == 0 {
			return got, nil, nil
		}
		if attempt == unprocessedRetries {
			left = map[string]bool{}
			for _, k := range rest.Keys {
				if s, ok := k["tenantId"].(*types.AttributeValueMemberS); ok {
					left[s.Value] = true
				}
			}
			return got, left, nil
		}
		req = map[string]types.KeysAndAttributes{table: rest}
		select {
		case <-time.After(time.Duration(50<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}
