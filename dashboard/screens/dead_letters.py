from dashboard.views import dead_letters

dead_letters.render()
