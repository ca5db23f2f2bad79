"""The operator console: audited operator actions behind the ops.* permissions,
their pages, and the Prometheus metrics."""
