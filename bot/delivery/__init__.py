"""The due-scan delivery engine: claim due schedules, send under a rate budget, record outcomes."""
