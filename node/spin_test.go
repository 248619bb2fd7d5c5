package node
var spinForTest = 0
