from dashboard.views import performance

performance.render()
