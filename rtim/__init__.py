"""rtim — real-time interaction management on Kafka.

For every customer, at every moment that matters, decide the best next action (or deliberately
none) on the best channel, under business rules, and learn online from what happens next.
"""

from rtim.errors import RtimError

__all__ = ["RtimError", "__version__"]
__version__ = "0.1.0"
