// aedes with its defaults (in-memory persistence, no auth) on 127.0.0.1:PORT.
// Started by bench/broker.py start_aedes; prints "listening" once it accepts.
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const port = Number(process.argv[2])
const aedes = await Aedes.createBroker()
const server = createServer(aedes.handle)
server.listen(port, '127.0.0.1', () => console.log('listening'))
process.on('SIGTERM', () => server.close(() => aedes.close(() => process.exit(0))))
