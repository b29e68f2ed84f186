from dashboard.views import assertions

assertions.render()
