"""Network-namespace testbed: nginx + wrk in two namespaces, pathologies injected and removed, bundles recorded."""
