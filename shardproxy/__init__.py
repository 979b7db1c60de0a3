"""shardproxy: one NzbDav library cached by several rclone instances, one per disk."""

__version__ = "0.1.0"
