package migrate

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"
)

// AWSConfig adjusts the standard AWS configuration (environment, shared config and
// credentials files, SSO, instance roles) that the DynamoDB client is built from. Empty
// fields leave the standard configuration alone.
type AWSConfig struct {
	// Profile is the shared config profile (AWS_PROFILE).
	Profile string
	// Region is the AWS region (AWS_REGION).
	Region string
	// EndpointURL replaces DynamoDB's endpoint (AWS_ENDPOINT_URL_DYNAMODB or
	// AWS_ENDPOINT_URL), for a local DynamoDB-compatible server.
	EndpointURL string
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials
	// (AWS_ACCESS_KEY_ID, ...); without them the standard credential chain applies.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Log receives the AWS library's own warnings (nil: the library prints them to
	// stderr).
	Log *slog.Logger
}

// String describes the config without its credentials.
func (c AWSConfig) String() string {
	return fmt.Sprintf("{Profile:%s Region:%s EndpointURL:%s static credentials:%t}", c.Profile, c.Region, c.EndpointURL, c.AccessKeyID != "")
}

// NewDynamoDBClient loads the AWS configuration, adjusted by c, and returns a DynamoDB
// client. It makes no request (credentials are resolved on first use).
func NewDynamoDBClient(ctx context.Context, c AWSConfig) (*dynamodb.Client, error) {
	var opts []func(*config.LoadOptions) error
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrate: AWS configuration: %w", err)
	}
	if c.Log != nil {
		log := c.Log
		cfg.Logger = logging.LoggerFunc(func(class logging.Classification, format string, v ...any) {
			level := slog.LevelWarn
			if class == logging.Debug {
				level = slog.LevelDebug
			}
			log.Log(context.Background(), level, "aws: "+fmt.Sprintf(format, v...))
		})
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("migrate: AWS configuration: no region (set AWS_REGION, or a region in the profile)")
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if c.EndpointURL != "" {
			o.BaseEndpoint = aws.String(c.EndpointURL)
		}
	}), nil
}
