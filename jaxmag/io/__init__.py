"""File formats: one module per format, each the only reader and writer of its files.

``dataset`` (the simulated movies, HDF5), ``measures_file`` (the measure maps, HDF5),
``rowfile`` (the preallocated-row writing both share), ``movie`` (TIFF, npy, HDF5 and OVF movies
read for prediction and detection; with ``movie_record`` its record, ``movie_metadata`` the pixel size
and frame interval a file states, ``movie_counts`` detector-count movies and their uint16 TIFF writer), ``psf`` (a user's PSF image), ``ovf``, ``mumax3``, ``mx3``, ``trajectory``, ``outdir``; ``atomic``
(crash-safe writing, used by every writer) and ``errors``.
"""
