"""CARLA support: recorder files, OpenDRIVE maps, recording import and live collection.

Modules: :mod:`format` (packet ids, profiles, record layouts), :mod:`recorder`
(streaming reader), :mod:`records` (record decoders), :mod:`recorder_writer`
(a test/benchmark writer), :mod:`info` (file summaries), :mod:`opendrive` (map
layer over the real ``carla.Map``), :mod:`features` (hero features shared by
replay and live), :mod:`importer` (recording to driving log), :mod:`live`
(collector for a running server). Only :mod:`opendrive` and :mod:`live` need the
``carla`` package.
"""
