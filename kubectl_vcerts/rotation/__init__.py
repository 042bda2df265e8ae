"""The rotation workflow: find, check, plan, back up, write, restart, wait, verify, roll back.

Talks to the cluster only through the Protocols in `ports.py`; never prints, never imports
`kubernetes`, typer or rich. Progress goes through a callback; results are report dataclasses.
"""
