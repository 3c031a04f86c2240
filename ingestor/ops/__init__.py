"""Operations: Prometheus metrics, the /livez /readyz /metrics listener, readiness rules."""
