"""``shardproxy relink``: rewrite library symlinks between ``.ids`` and ``.ids-s<N>``.

``plan`` decides each link's new target (pure); ``run`` walks the library and rewrites
links with a journal so an interrupted run resumes.
"""
