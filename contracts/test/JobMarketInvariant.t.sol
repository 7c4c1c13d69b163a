// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {JobMarket} from "../src/JobMarket.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";

/// @notice Drives random sequences of posts, bids, commits, reveals, challenges, time jumps,
/// finalizations, claims and stake withdrawals. Calls that the market rejects are swallowed:
/// the invariants must hold whatever got through.
contract MarketHandler is Test {
    JobMarket public market;
    OperatorRegistry public registry;
    address[] public ops;
    address[] public creators;
    uint256[] public jobs;
    /// @dev jobId => final state + 1, recorded the first time the job is seen final.
    mapping(uint256 => uint8) public endedAs;
    bool public endedTwice;
    mapping(uint256 => mapping(address => bytes32)) internal _result;
    uint256 public calls;
    /// @dev How many (job, state) pairs were observed, per state: shows what the run reached.
    mapping(uint8 => uint256) public reached;
    mapping(uint256 => mapping(uint8 => bool)) internal _seen;

    bytes32 internal constant A = keccak256("A");
    bytes32 internal constant B = keccak256("B");

    constructor(JobMarket market_, OperatorRegistry registry_, address[] memory ops_, address[] memory creators_) {
        market = market_;
        registry = registry_;
        ops = ops_;
        creators = creators_;
    }

    function jobCount() external view returns (uint256) {
        return jobs.length;
    }

    function opCount() external view returns (uint256) {
        return ops.length;
    }

    function creatorCount() external view returns (uint256) {
        return creators.length;
    }

    // ---- actions ----

    mapping(bytes4 => uint256) public attempts;

    function post(uint256 seed) external {
        ++attempts[this.post.selector];
        if (_openJobs() >= 3) return;
        // spread small fuzzer seeds over every parameter
        seed = uint256(keccak256(abi.encode(seed)));
        IJobMarket.JobParams memory p;
        p.specCid = hex"0155";
        p.specHash = keccak256(abi.encode(seed));
        p.concurrency = uint8(bound(seed, 1, 3));
        p.confidence = uint8(bound(seed >> 8, 1, p.concurrency));
        p.minBids = uint8(bound(seed >> 16, p.concurrency, p.concurrency + 2));
        p.maxPrice = uint96(bound(seed >> 24, 1, 1 ether));
        // within the deployment's cap of 10 x maxPrice (and usually at it: collateral matters)
        uint256 cap = uint256(p.maxPrice) * 10;
        p.collateral = uint96(bound(seed >> 64, 0, cap < 2 ether ? cap : 2 ether));
        p.bidWindow = uint32(bound(seed >> 100, 10, 3000));
        p.execWindow = uint32(bound(seed >> 110, 10, 3000));
        p.revealWindow = uint32(bound(seed >> 120, 10, 3000));
        if ((seed >> 130) % 3 == 0) {
            p.verifier = IJobMarket.Verifier.Optimistic;
            p.challengeWindow = uint32(bound(seed >> 140, 10, 3000));
        }
        p.escalate = (seed >> 150) % 2 == 0;
        p.mediators = uint8(bound(seed >> 170, 0, 4)); // 0: the deployment's 3
        address creator = creators[(seed >> 160) % creators.length];
        vm.prank(creator);
        try market.postJob{value: uint256(p.concurrency) * p.maxPrice}(p) returns (uint256 jobId) {
            jobs.push(jobId);
        } catch {}
        _after();
    }

    function bid(uint256 jobSeed, uint256 opSeed, uint96 price) external {
        (bool found, uint256 jobId) = _pick(jobSeed, IJobMarket.JobState.Posted, IJobMarket.JobState.Posted);
        if (!found) return;
        IJobMarket.Job memory job = market.getJob(jobId);
        price = uint96(bound(price, 0, job.maxPrice));
        address op = ops[opSeed % ops.length];
        if (opSeed % 8 != 0) {
            // usually an operator that has not bid yet
            IJobMarket.Bid[] memory bids = market.getBids(jobId);
            for (uint256 t; t < ops.length; ++t) {
                op = ops[(opSeed % ops.length + t) % ops.length];
                bool already;
                for (uint256 i; i < bids.length; ++i) {
                    if (bids[i].operator == op) already = true;
                }
                if (!already) break;
            }
        }
        vm.prank(op);
        try market.bid(jobId, price) {} catch {}
        _after();
    }

    function commit(uint256 jobSeed, uint256 opSeed, uint8 honesty) external {
        (bool found, uint256 jobId) = _pick(jobSeed, IJobMarket.JobState.Running, IJobMarket.JobState.Disputed);
        if (!found) return;
        address op = _participant(jobId, opSeed, false);
        bytes32 result = honesty % 4 == 0 ? B : A;
        _result[jobId][op] = result;
        // originals commit over the sealed hash, mediators over the plain one
        bytes32 value =
            market.getJob(jobId).state == IJobMarket.JobState.Disputed ? result : keccak256(abi.encode(jobId, result));
        vm.prank(op);
        try market.commitResult(jobId, keccak256(abi.encode(jobId, op, value, bytes32(uint256(7))))) {} catch {}
        _after();
    }

    function reveal(uint256 jobSeed, uint256 opSeed) external {
        (bool found, uint256 jobId) =
            _pick(jobSeed, IJobMarket.JobState.Revealing, IJobMarket.JobState.DisputeRevealing);
        if (!found) return;
        address op = _participant(jobId, opSeed, true);
        bytes32 result = _result[jobId][op];
        if (result == bytes32(0)) result = A;
        if (market.getJob(jobId).state == IJobMarket.JobState.DisputeRevealing) {
            vm.prank(op);
            try market.revealMediation(jobId, result, bytes32(uint256(7))) {} catch {}
        } else {
            vm.prank(op);
            try market.revealResult(jobId, keccak256(abi.encode(jobId, result)), bytes32(uint256(7))) {} catch {}
        }
        _after();
    }

    function challenge(uint256 jobSeed, uint256 whoSeed) external {
        if (jobs.length == 0) return;
        uint256 jobId = jobs[jobSeed % jobs.length];
        address who = whoSeed % 2 == 0 ? creators[whoSeed % creators.length] : ops[whoSeed % ops.length];
        uint256 bond = market.challengeBondOf(jobId);
        vm.prank(who);
        try market.challenge{value: bond}(jobId) {} catch {}
        _after();
    }

    /// @dev Anyone publishes a Verified job's plain result hash (A or B; the wrong one reverts).
    function publish(uint256 jobSeed, bool a) external {
        (bool found, uint256 jobId) = _pick(jobSeed, IJobMarket.JobState.Verified, IJobMarket.JobState.Verified);
        if (!found) return;
        try market.publishResult(jobId, a ? A : B) {} catch {}
        _after();
    }

    /// @dev Time and blocks pass: usually one block (a draw becomes possible), sometimes 300
    /// (an armed draw's block hash expires and the draw is re-armed).
    function warp(uint256 secs, uint256 blocks) external {
        vm.warp(block.timestamp + bound(secs, 1, 300));
        vm.roll(block.number + (blocks % 8 == 0 ? 300 : 1));
        _after();
    }

    /// @dev Moves a job through bidding and its draws the way a node does: a Posted job with
    /// enough bids is closed right after its bid deadline (arming the draw); a Drawing or
    /// DisputeDrawing job is drawn in the block after its draw block.
    function advance(uint256 jobSeed) external {
        (bool found, uint256 jobId) = _pick(jobSeed, IJobMarket.JobState.Drawing, IJobMarket.JobState.DisputeDrawing);
        if (!found) (found, jobId) = _pick(jobSeed, IJobMarket.JobState.Posted, IJobMarket.JobState.Posted);
        if (!found) return;
        IJobMarket.Job memory job = market.getJob(jobId);
        if (job.state == IJobMarket.JobState.Posted) {
            if (job.bidCount < job.minBids) return;
            if (block.timestamp <= job.bidDeadline) vm.warp(job.bidDeadline + 1);
        } else if (block.number <= job.phaseDeadline) {
            vm.roll(job.phaseDeadline + 1);
        }
        try market.finalize(jobId) {} catch {}
        _after();
    }

    function finalize(uint256 jobSeed) external {
        if (jobs.length == 0) return;
        try market.finalize(jobs[jobSeed % jobs.length]) {} catch {}
        _after();
    }

    function claim(uint256 whoSeed) external {
        address who = whoSeed % 2 == 0 ? creators[whoSeed % creators.length] : ops[whoSeed % ops.length];
        vm.prank(who);
        try market.claim() {} catch {}
        _after();
    }

    function requestWithdrawal(uint256 opSeed, uint96 amount) external {
        address op = ops[opSeed % ops.length];
        amount = uint96(bound(amount, 1, 1 ether));
        vm.prank(op);
        try registry.requestWithdrawal(amount) {} catch {}
        _after();
    }

    function withdraw(uint256 opSeed) external {
        address op = ops[opSeed % ops.length];
        vm.prank(op);
        try registry.withdraw() {} catch {}
        _after();
    }

    function restake(uint256 opSeed, uint96 amount) external {
        address op = ops[opSeed % ops.length];
        amount = uint96(bound(amount, 1, 3 ether));
        vm.prank(op);
        try registry.stake{value: amount}() {} catch {}
        _after();
    }

    // ---- helpers ----

    function _openJobs() internal view returns (uint256 open) {
        for (uint256 i; i < jobs.length; ++i) {
            if (market.getJob(jobs[i]).escrow != 0) ++open;
        }
    }

    /// @dev The first job from a random start whose state is `lo`, `hi`, or (for commit and
    /// reveal phases) the matching dispute phase.
    function _pick(uint256 seed, IJobMarket.JobState lo, IJobMarket.JobState hi) internal view returns (bool, uint256) {
        uint256 n = jobs.length;
        for (uint256 t; t < n; ++t) {
            uint256 jobId = jobs[(seed % n + t) % n];
            IJobMarket.JobState s = market.getJob(jobId).state;
            if (s == lo || s == hi) return (true, jobId);
        }
        return (false, 0);
    }

    /// @dev Usually a deal holder (or mediator, in a dispute) that still has to commit (or reveal);
    /// sometimes any operator, to exercise the rejections.
    function _participant(uint256 jobId, uint256 seed, bool revealing) internal view returns (address) {
        IJobMarket.JobState s = market.getJob(jobId).state;
        IJobMarket.Deal[] memory d;
        if (s == IJobMarket.JobState.Disputed || s == IJobMarket.JobState.DisputeRevealing) {
            d = market.getMediators(jobId);
        } else {
            d = market.getDeals(jobId);
        }
        if (d.length == 0 || seed % 8 == 0) return ops[seed % ops.length];
        for (uint256 t; t < d.length; ++t) {
            IJobMarket.Deal memory x = d[(seed % d.length + t) % d.length];
            if (revealing ? (x.committed && !x.revealed) : !x.committed) return x.operator;
        }
        return d[seed % d.length].operator;
    }

    function _after() internal {
        ++calls;
        for (uint256 i; i < jobs.length; ++i) {
            uint256 jobId = jobs[i];
            IJobMarket.JobState s = market.getJob(jobId).state;
            if (!_seen[jobId][uint8(s)]) {
                _seen[jobId][uint8(s)] = true;
                ++reached[uint8(s)];
            }
            bool ended = s == IJobMarket.JobState.Verified || s == IJobMarket.JobState.Failed
                || s == IJobMarket.JobState.Expired;
            uint8 was = endedAs[jobId];
            if (was != 0 && was != uint8(s) + 1) endedTwice = true;
            if (was == 0 && ended) endedAs[jobId] = uint8(s) + 1;
        }
    }
}

contract JobMarketInvariantTest is Test {
    OperatorRegistry internal registry;
    JobMarket internal market;
    MarketHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        registry = new OperatorRegistry(300, 1 ether);
        market = new JobMarket(IOperatorRegistry(address(registry)), 3, 0.5 ether, 10, 10, 10, 10, 100, 0);
        registry.setMarket(address(market));
        address[] memory ops = new address[](8);
        for (uint256 i; i < ops.length; ++i) {
            ops[i] = address(uint160(0x2000 + i));
            vm.deal(ops[i], 1000 ether);
            vm.prank(ops[i]);
            registry.register{value: 20 ether}(
                "peer",
                IOperatorRegistry.Capabilities({engines: 1, cpuMillicores: 1, memoryMiB: 1, diskGiB: 1, gpus: 0})
            );
        }
        address[] memory creators = new address[](2);
        creators[0] = address(0xC1);
        creators[1] = address(0xC2);
        vm.deal(creators[0], 1_000_000 ether);
        vm.deal(creators[1], 1_000_000 ether);
        handler = new MarketHandler(market, registry, ops, creators);
        targetContract(address(handler));
    }

    /// @dev The market holds exactly the open jobs' escrow and bonds plus everyone's unclaimed
    /// payouts plus the burned (unowned) money.
    function invariant_MarketBalanceEqualsEscrowPlusUnclaimed() public view {
        uint256 owed;
        for (uint256 i; i < handler.jobCount(); ++i) {
            owed += market.getJob(handler.jobs(i)).escrow;
        }
        for (uint256 i; i < handler.opCount(); ++i) {
            owed += market.withdrawable(handler.ops(i));
        }
        for (uint256 i; i < handler.creatorCount(); ++i) {
            owed += market.withdrawable(handler.creators(i));
        }
        owed += market.withdrawable(address(0)); // burned: unowned, never claimable
        assertEq(address(market).balance, owed, "market balance == open escrow + bonds + unclaimed + burned");
    }

    /// @dev The registry holds exactly every operator's stake plus pending withdrawals.
    function invariant_RegistryBalanceEqualsBonds() public view {
        uint256 bonded;
        for (uint256 i; i < registry.operatorCount(); ++i) {
            IOperatorRegistry.Operator memory o = registry.getOperator(registry.operatorAt(i));
            bonded += uint256(o.stake) + o.pendingWithdrawal;
            assertGe(o.stake, o.locked, "locked stake is part of the bond");
        }
        assertEq(address(registry).balance, bonded, "registry balance == stakes + pending withdrawals");
    }

    /// @dev Each operator's locked stake is exactly the collateral of the open deals and
    /// mediations it holds.
    function invariant_LockedEqualsOpenCollateral() public view {
        uint256 nOps = handler.opCount();
        uint256[] memory expected = new uint256[](nOps);
        for (uint256 j; j < handler.jobCount(); ++j) {
            uint256 jobId = handler.jobs(j);
            IJobMarket.Job memory job = market.getJob(jobId);
            if (job.escrow == 0 || job.state == IJobMarket.JobState.Posted) continue;
            _addCollateral(expected, market.getDeals(jobId), job.collateral);
            _addCollateral(expected, market.getMediators(jobId), job.collateral);
        }
        for (uint256 i; i < nOps; ++i) {
            assertEq(registry.getOperator(handler.ops(i)).locked, expected[i], "locked == open collateral");
        }
    }

    /// @dev The mediator pool is exactly the operators with at least minStake free, once each.
    function invariant_EligiblePoolIsTheOperatorsWithFreeStake() public view {
        uint256 expected;
        for (uint256 i; i < handler.opCount(); ++i) {
            address op = handler.ops(i);
            bool free = registry.freeStake(op) >= registry.minStake();
            assertEq(registry.isEligible(op), free, "eligible iff minStake free");
            if (free) ++expected;
        }
        assertEq(registry.eligibleCount(), expected, "pool size");
    }

    /// @dev A job that reached Verified, Failed or Expired never moves again.
    function invariant_NoJobEndsTwice() public view {
        assertFalse(handler.endedTwice(), "a final state changed");
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 jobId = handler.jobs(i);
            uint8 was = handler.endedAs(jobId);
            if (was != 0) assertEq(uint256(market.getJob(jobId).state) + 1, was, "final state is final");
        }
    }

    /// @dev A Verified job's result is the sealed hash of a result someone computed (A or B),
    /// sealed for that job.
    function invariant_VerifiedResultIsASealedResult() public view {
        for (uint256 i; i < handler.jobCount(); ++i) {
            uint256 jobId = handler.jobs(i);
            IJobMarket.Job memory job = market.getJob(jobId);
            if (job.state != IJobMarket.JobState.Verified) continue;
            assertTrue(
                job.sealedResult == keccak256(abi.encode(jobId, keccak256("A")))
                    || job.sealedResult == keccak256(abi.encode(jobId, keccak256("B"))),
                "verified result is sealed A or B"
            );
        }
    }

    /// @dev Prints which states the run reached (forge test -vv).
    function afterInvariant() public view {
        string[12] memory names = [
            "None",
            "Posted",
            "Drawing",
            "Running",
            "Revealing",
            "Challengeable",
            "DisputeDrawing",
            "Disputed",
            "DisputeRevealing",
            "Verified",
            "Failed",
            "Expired"
        ];
        log("handler calls", handler.calls());
        log("jobs posted", handler.jobCount());
        log("post attempts", handler.attempts(MarketHandler.post.selector));
        for (uint8 i = 1; i < 12; ++i) {
            log(names[i], handler.reached(i));
        }
    }

    function _addCollateral(uint256[] memory expected, IJobMarket.Deal[] memory deals, uint96 collateral)
        internal
        view
    {
        for (uint256 d; d < deals.length; ++d) {
            for (uint256 i; i < expected.length; ++i) {
                if (handler.ops(i) == deals[d].operator) expected[i] += collateral;
            }
        }
    }
}
