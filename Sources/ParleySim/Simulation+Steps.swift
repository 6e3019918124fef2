import Logging
import ParleyChannel
@_spi(Simulation) import ParleyCrypto
import ParleyGames
import ParleyJournal
import ParleyNode
import ParleySettlement
import ParleyTransport
import ParleyLocks
import ParleyWire

/// The run's steps: the honest user, Mallory, injected faults and restarts, one at a time.
extension Simulation {
    /// One move by someone: Mallory (most often), the honest user, or a fault.
    func act() {
        let roll = choices.integer(in: 0...99)
        if roll < 55 {
            malloryActs()
        } else if roll < 85 {
            honestUserActs()
        } else {
            injectFault()
        }
        flushMallory()
    }

    func honestUserActs() {
        guard let node, !crashed else { return }
        let channels = node.statuses.filter { !$0.isClosed }
        let kind = choices.integer(in: 0...9)
        let box = self.box
        if kind < 3 || channels.isEmpty {
            guard let network else { return }
            let game = choices.chance(0.35)
            let deposit = Amount(choices.integer(in: 1...500))
            let theirs = Amount(choices.integer(in: game ? 1...500 : 0...500))
            box.count(game ? "honest.open-game" : "honest.open")
            box.note(.honest, "opens \(game ? "a game" : "a channel"): deposits \(deposit), Mallory \(theirs)")
            let (peer, address, challenge) = (malloryKey.publicKey, network.malloryAddress, config.challengeDuration)
            let call = box.begin("open", bound: Self.openCallBound)
            Task {
                defer { box.finish(call) }
                do {
                    let channel = try await node.open(
                        with: peer, at: address, deposit: deposit, theirs: theirs,
                        app: game ? TicTacToe.id : .payment, appData: game ? TicTacToe.initialAppData : [],
                        challengeDuration: challenge, timeout: .seconds(10))
                    box.note(.honest, "opened \(channel.id.shortID)")
                } catch {
                    box.note(.honest, "open failed: \(error)")
                }
            }
            return
        }
        let status = channels[choices.integer(in: 0...(channels.count - 1))]
        guard let channel = node.channels.first(where: { $0.id == status.id }) else { return }
        if status.latest.state.appData.count == TicTacToe.Board.appDataByteCount, (3...6).contains(kind) {
            // A game: our move when it is our turn.
            guard let board = try? TicTacToe.Board(appData: status.latest.state.appData), !board.emptyCells.isEmpty,
                TicTacToe().mover(in: status.latest.state) == status.me
            else { return }
            let cell = board.emptyCells[choices.integer(in: 0...(board.emptyCells.count - 1))]
            box.count("honest.move")
            box.note(.honest, "marks cell \(cell) on \(status.id.shortID)")
            let call = box.begin("move on \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.update { state in state = try TicTacToe.move(cell, in: state) } } catch {
                    box.note(.honest, "move failed: \(error)")
                    // The node says the game must continue on chain: so be it.
                    if case .updateFailed(_, .refused(.moveMustGoOnChain))? = error as? NodeError {
                        try? await channel.dispute()
                    }
                }
            }
            return
        }
        switch kind {
        case 3...6:
            let mine = status.latest.state.allocation[status.me]
            guard mine > 0 else { return }
            let amount = Amount(choices.integer(in: 1...Int(min(mine, 50).value)))
            box.count("honest.pay")
            box.note(.honest, "pays \(amount) on \(status.id.shortID)")
            let call = box.begin("pay on \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.pay(amount) } catch { box.note(.honest, "pay failed: \(error)") }
            }
        case 7, 8:
            box.count("honest.close")
            box.note(.honest, "closes \(status.id.shortID)")
            let call = box.begin("close of \(status.id.shortID)", bound: Self.updateCallBound)
            Task {
                defer { box.finish(call) }
                do { _ = try await channel.close() } catch {
                    box.note(.honest, "close failed: \(error)")
                    if case .updateFailed(_, .refused(.moveMustGoOnChain))? = error as? NodeError {
                        try? await channel.dispute()
                    }
                }
            }
        default:
            box.count("honest.dispute")
            box.note(.honest, "disputes \(status.id.shortID)")
            Task {
                do { try await channel.dispute() } catch { box.note(.honest, "dispute failed: \(error)") }
            }
        }
    }

    func injectFault() {
        let kind = choices.integer(in: 0...9)
        switch kind {
        case 0...3 where config.crashes && !crashed:
            crashHonest()
            if choices.chance(0.5) {
                restart()
            } else {
                restartAt = clock.now + randomDuration(upTo: config.maxDowntime)
            }
        case 4...5 where config.chainOutages && !chainFaults.isDown:
            chainFaults.set(down: true)
            outageUntil = clock.now + randomDuration(upTo: config.maxDowntime)
            box.count("fault.chain-outage")
            box.note(.fault, "chain endpoint unreachable")
        case 6...7 where config.partitions:
            let until = clock.now + randomDuration(upTo: .seconds(25))
            network?.partition(until: until)
            box.count("fault.partition")
            box.note(.fault, "partition until \(until)")
        default:
            break
        }
    }

    func restart() {
        box.count("fault.restart")
        if let mallory, choices.chance(0.3) { mallory.replayOnConnect = finishedOnChain() }
        do { try startHonest() } catch let violation as Oracle.Violation {
            box.oracle?.report(violation)
        } catch {
            box.oracle?.report(Oracle.Violation(rule: .journalReadable, detail: "\(error)"))
        }
    }

    /// Which channels are over as the chain sees them: concluded, given up, or never funded.
    func finishedOnChain() -> (ChannelID) -> Bool {
        let chain = self.chain
        return { id in chain.channel(id).map { $0.isConcluded || $0.depositsClosed || !$0.isFunded } ?? true }
    }

    func malloryActs() {
        guard let mallory, let network else { return }
        let channels = mallory.order
        let pick = { [choices] () -> ChannelID? in
            channels.isEmpty ? nil : channels[choices.integer(in: 0...(channels.count - 1))]
        }
        let kind = choices.integer(in: 0...29)
        switch kind {
        case 0...7:
            mallory.follow(limit: choices.integer(in: 1...8))
        case 8:
            mallory.count(.withhold)
        case 9:
            // A bribe where she holds a secret final, else a payment anywhere.
            let bribable = channels.filter { mallory.heldFinal($0) != nil }
            if !bribable.isEmpty, choices.chance(0.7) { mallory.count(.bribe) }
            if let id = bribable.isEmpty || !choices.chance(0.7) ? pick() : bribable[choices.integer(in: 0...(bribable.count - 1))],
                let held = mallory.channels[id], let engine = held.engine,
                engine.latest.isFullySigned
            {
                let mine = engine.latest.state.allocation[held.me]
                if mine > 0 {
                    mallory.pay(id, amount: Amount(choices.integer(in: 1...Int(min(mine, 20).value))), update: nextUpdate)
                    nextUpdate += 1
                }
            }
        case 10:
            if let id = pick() {
                mallory.finalize(id, update: nextUpdate)
                nextUpdate += 1
            }
        case 11...15:
            let forgeries: [Mallory.Move] = [.forgeOlder, .forgeSteal, .forgeFinal, .forgeSkip, .replayOtherChannel]
            if let id = pick() { mallory.forge(forgeries[kind - 11], on: id) }
        case 16:
            if let id = pick() { mallory.forgeCommitProof(on: id) }
        case 17:
            if let id = pick() { mallory.lieAtReestablish(on: id) }
        case 18:
            mallory.garbage()
        case 19:
            mallory.declineFinals.toggle()
            mallory.count(.declineMode)
        case 20:
            mallory.refusingReestablish.toggle()
            mallory.count(.refuseReestablish)
        case 21:
            if let link = mallory.link, choices.chance(0.5) {
                mallory.count(.disconnect)
                network.malloryClose(link)
            } else {
                mallory.count(.dial)
                _ = network.malloryDial(now: clock.now)
            }
        case 22:
            // She stops reading for a while: the honest sender's budget fills, then it waits.
            mallory.count(.stopReading)
            network.setMalloryReading(false, now: clock.now)
            readingResumes = clock.now + randomDuration(upTo: .seconds(12))
        case 23:
            mallory.count(.refuseDials)
            network.setMalloryListening(false)
            dialsResume = clock.now + randomDuration(upTo: .seconds(15))
        case 24...26:
            let moves: [Mallory.Move] = [
                .registerStale, .registerLatest, .registerHeldFinal, .conclude, .withdraw, .reclaim, .deposit, .depositMismatched,
            ]
            if let id = pick() { mallory.chainMove(moves[choices.integer(in: 0...(moves.count - 1))], on: id) }
        case 27:
            let domain = choices.chance(0.8) ? chain.domain : SettlementDomain.devchainDefault
            let game = choices.chance(0.35)
            mallory.count(domain != chain.domain ? .openWrongDomain : game ? .openGame : .open)
            mallory.open(
                mine: Amount(choices.integer(in: game ? 1...500 : 0...500)), theirs: Amount(choices.integer(in: game ? 1...500 : 0...500)),
                domain: domain, challenge: config.challengeDuration, app: game ? TicTacToe.id : .payment)
            if mallory.link == nil { _ = network.malloryDial(now: clock.now) }
        case 28 where choices.chance(0.5):
            // Games: her move off chain, or on chain when the registered game is hers to move.
            let games = channels.filter { mallory.channels[$0]?.params.appID == TicTacToe.id }
            guard !games.isEmpty else { return }
            let id = games[choices.integer(in: 0...(games.count - 1))]
            if let registered = chain.channel(id)?.registeredState, chain.channel(id)?.isConcluded == false {
                switch choices.integer(in: 0...9) {
                case 0...5: mallory.moveOnChain(id, registered: registered, finalCopy: false)
                case 6...7: mallory.moveOnChain(id, registered: registered, finalCopy: true)
                default: mallory.count(.stopMoving)
                }
            } else if choices.chance(0.8) {
                mallory.move(id, update: nextUpdate)
                nextUpdate += 1
            } else {
                mallory.count(.stopMoving)
            }
        case 28:
            if choices.chance(0.5) {
                mallory.replayOpen(preferring: finishedOnChain())
            } else {
                // A channel whose chain record she opens with other amounts than agreed, once
                // the node has signed version 0 (before that, the node would see the chain's
                // record and refuse the proposal: a used id). Half of them she alone funds
                // (the node's share is 0): her short deposit then makes the chain say
                // "funded", and she pays the node with money that is not there.
                mallory.count(.openMismatched)
                mallory.open(
                    mine: Amount(choices.integer(in: 1...500)),
                    theirs: choices.chance(0.5) ? 0 : Amount(choices.integer(in: 0...500)),
                    domain: chain.domain, challenge: config.challengeDuration, deposit: .depositMismatched)
                if mallory.link == nil { _ = network.malloryDial(now: clock.now) }
            }
        default:
            if let id = pick() {
                mallory.count(.skipDeposit)
                mallory.chainMove(choices.chance(0.5) ? .deposit : .depositMismatched, on: id)
            }
        }
    }

    /// Sends what Mallory wrote and runs the chain calls she queued.
    func flushMallory() {
        guard let mallory, let network else { return }
        for (link, bytes) in mallory.outbox { network.mallorySend(bytes, on: link, now: clock.now) }
        mallory.outbox = []
        if mallory.wantsDisconnect, let link = mallory.link {
            mallory.wantsDisconnect = false
            network.malloryClose(link)
        }
        let calls = mallory.chainCalls
        mallory.chainCalls = []
        let box = self.box
        for (move, call) in calls {
            mallory.count(move)
            Task {
                do {
                    try await call()
                    box.note(.chain, "Mallory \(move.rawValue): done")
                } catch {
                    box.note(.chain, "Mallory \(move.rawValue): refused (\(error))")
                }
            }
        }
    }

    /// Lets virtual time run to `target`: messages delivered and timers fired in time order,
    /// every job run after each.
    func settle(upTo target: Duration) {
        while true {
            _ = scheduler.runUntilIdle()
            flushMallory()
            if let until = outageUntil, clock.now >= until {
                chainFaults.set(down: false)
                outageUntil = nil
                box.note(.fault, "chain endpoint back")
            }
            if let at = restartAt, clock.now >= at {
                restartAt = nil
                restart()
            }
            if let until = readingResumes, clock.now >= until {
                readingResumes = nil
                mallory?.count(.resumeReading)
                network?.setMalloryReading(true, now: clock.now)
            }
            if let until = dialsResume, clock.now >= until {
                dialsResume = nil
                mallory?.count(.acceptDials)
                network?.setMalloryListening(true)
            }
            let nextMessage = network?.nextDelivery
            let nextTimer = clock.nextDeadline
            let wakeUps = [nextMessage, nextTimer, outageUntil, readingResumes, dialsResume, restartAt]
            guard let next = wakeUps.compactMap({ $0 }).min(), next <= target else { break }
            if next > clock.now { clock.advance(to: next) }
            network?.deliverDue(now: clock.now)
            _ = clock.fireDue()
        }
        if target > clock.now { clock.advance(to: target) }
        _ = scheduler.runUntilIdle()
    }
}
