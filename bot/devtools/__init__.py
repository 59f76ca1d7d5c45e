"""Tools for trying and testing BackCalm without Telegram: a fake Bot API and the demo."""
