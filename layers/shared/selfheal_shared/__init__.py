"""Code every selfheal Lambda function shares: settings, AWS clients, the model configuration,
the run ledger, starting runs, S3 URIs, notifications, named errors and event models."""
