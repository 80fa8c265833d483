package s3blob

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// ClientConfig says how to reach an S3-compatible endpoint.
type ClientConfig struct {
	Endpoint        string // empty means AWS
	Region          string
	PathStyle       bool
	AccessKeyID     string // empty means the SDK's default chain (env, profile, IMDS)
	SecretAccessKey string
	HTTPClient      aws.HTTPClient // nil means a pooled client sized for streaming
}

// NewClient builds an S3 client suited to streaming parts of known length.
//
// Two SDK defaults are switched off on purpose: the payload SHA-256 (it needs
// a seekable body, so it would force buffering every part) and the default
// CRC trailer checksums (not every S3-compatible server accepts them).
// Integrity comes from Content-Length and the TLS or loopback transport.
func NewClient(ctx context.Context, c ClientConfig) (*s3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(c.Region),
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if c.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	if c.HTTPClient != nil {
		opts = append(opts, awsconfig.WithHTTPClient(c.HTTPClient))
	} else {
		// Buildable, so an AWS_CA_BUNDLE in the environment still applies.
		opts = append(opts, awsconfig.WithHTTPClient(awshttp.NewBuildableClient().
			WithTransportOptions(func(tr *http.Transport) {
				tr.MaxIdleConns = 256
				tr.MaxIdleConnsPerHost = 256
				tr.IdleConnTimeout = 90 * time.Second
			})))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}), nil
}
