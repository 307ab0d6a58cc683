"""Asynq's on-Redis format (key names and protobuf messages), shared by the probe and the tests."""
