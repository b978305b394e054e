// dev.example.com: one replica of everything, verbose logs.
(import 'common/stack.libsonnet')('dev.example.com', logLevel='debug')
