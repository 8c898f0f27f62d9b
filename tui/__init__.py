"""The nbgan terminal dashboard (Textual). Started by `nbgan tui` or `nbgan-tui`.

It talks to training only through run directories (nbgan_app.rundir) and
`nbgan` processes; nbgan_app never imports this package.
"""
