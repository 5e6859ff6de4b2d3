"""Lambda entry points for the scheduled side of Trainbot (the bot's is ``bot.handler``).

Importing this package in a Lambda execution environment starts a cold start: the cyclic
garbage collector is paused until the first invocation ends (:mod:`backend.entrypoints.coldstart`).
"""

from backend.entrypoints import coldstart

coldstart.pause()
