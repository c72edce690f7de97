from ..kit import Kit
KIT = Kit("lti-1.3-platform", "x", "x")
