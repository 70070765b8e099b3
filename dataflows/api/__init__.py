"""The analysts' workbench: an HTTP API over the alert store, and the web page
served beside it (`static/`), by the daemon or by `fundwatch serve`."""
