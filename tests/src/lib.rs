//! testenv: a Kubernetes-API-compatible server over HTTPS on loopback.
