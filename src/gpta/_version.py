"""gpta's version, in a module of its own at the bottom of the house.

Modules that record the version (the saved model's manifest, the run directory, the report
page) import it from here: the package root imports the run and the pipeline, so importing
it from there would point up.
"""

__version__ = "0.1.0"
