"""The records office: retention and legal holds, erasure with signed destruction
certificates, sealed exports anyone can verify offline, the GDPR art. 30 report,
and encrypted backups with restore.

Everything here is plain functions over an `Archive` (writes) or a reader
connection (reads), with the time passed in as milliseconds so the policy engine
can be driven by an injectable clock. The CLI and the web UI call these.
"""
