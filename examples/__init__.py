"""Example applications built on domain-monitor.

:mod:`examples.music_home` monitors a music-streaming homepage recommender; its event
generator, with the incidents it injects, is :mod:`examples.music_home_events`.
"""
