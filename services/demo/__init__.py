"""`gongji demo`: both services in one process on a temporary SQLite database, and a
family walked through mutual aid over real gRPC with mutual TLS, printed as a report.

`run` starts the services and walks the chapters in order (`bindings`, `payments`,
`cross_province`, `trust`, `endings`); the chapters stand on `family` and `report`, which
import nothing else of the demo. This file stays empty so that importing any of them does
not pull in the rest."""
