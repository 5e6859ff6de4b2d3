"""Lambda entry points for the scheduled side of Trainbot (the bot's is ``bot.handler``)."""
