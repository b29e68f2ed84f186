from dashboard.views import drift

drift.render()
