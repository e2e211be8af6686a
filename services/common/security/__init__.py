"""Trust boundaries: who is calling (mutual TLS, SPIFFE IDs), what it may do (an access
policy that is data, default deny), and what it may see (personal data masked for those who
may not see it whole). `interceptors.CallGuard` applies all three to every call."""
