"""The camera animation-data stage (TR 26.813 D.3.3, network-centric, video or image source).

* :mod:`.groundtruth` -- pictures of the product's head at known weights and head poses;
* :mod:`.quality` -- scoring tracked faces against that truth (issue 13's measures).
"""
