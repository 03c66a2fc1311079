"""The adapters to AWS: DynamoDB (writes and reads), SQS, Secrets Manager. None leaks a botocore error."""
