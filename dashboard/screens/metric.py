from dashboard.views import metric

metric.render()
