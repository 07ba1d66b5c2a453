"""speechrnn-serve's web app: the page, its JSON API and the live stream (speechrnn.cli.serve)."""
