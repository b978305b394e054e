// An external variable not given.
{ env: std.extVar('env') }
