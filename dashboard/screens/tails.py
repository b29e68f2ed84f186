from dashboard.views import tails

tails.render()
